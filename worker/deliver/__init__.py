"""Deliver: render alerts, send them through apprise once, pace them through outboxes."""
