"""carecast: outbound campaigns and proactive care, throttled by what each contact asked for."""
