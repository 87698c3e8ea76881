"""Signed events to the platform: webhook endpoints per organization, events, deliveries.

Sits between billing and usage in the layers: billing calls
`outbound.services.event_send`; outbound listens to usage's seams
(balance changes, happenings) in `OutboundConfig.ready()`.
"""
