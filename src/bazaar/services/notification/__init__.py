"""Notification: mails the customer when an order is paid or cancelled.

A worker on the platform bus (consumer `notification`) with a small HTTP
side-app for `/healthz`, `/readyz` and `/metrics`. The consumers queue one mail per order
and kind, in the inbox's transaction of the event; a sender task sends the queue. See
`handlers` for the one window where SMTP is at-least-once.
"""
