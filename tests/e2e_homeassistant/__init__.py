"""End-to-end test of the integration in a real ``hass`` process (see ``test_real_hass``)."""
