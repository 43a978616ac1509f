"""The throttle and consent decision: pure functions over plain data, no I/O."""
