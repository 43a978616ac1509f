"""The search attributes operators filter on in the Temporal UI. Ids only, never PII."""

from temporalio.common import SearchAttributeKey

CAMPAIGN_ID = SearchAttributeKey.for_keyword("CampaignId")
CAMPAIGN_VERSION = SearchAttributeKey.for_keyword("CampaignVersion")
CONTACT_ID = SearchAttributeKey.for_keyword("ContactId")
CAMPAIGN_STEP = SearchAttributeKey.for_keyword("CampaignStep")
CATEGORY = SearchAttributeKey.for_keyword("Category")

ALL = (CAMPAIGN_ID, CAMPAIGN_VERSION, CONTACT_ID, CAMPAIGN_STEP, CATEGORY)

# Set by Temporal on a run a schedule started: when the schedule meant it to start.
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
