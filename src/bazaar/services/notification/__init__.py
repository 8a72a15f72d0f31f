"""Notification: mails the customer when an order is paid or cancelled.

A FastStream worker on the platform bus (consumer `notification`) with a small HTTP
side-app for `/healthz`, `/readyz` and `/metrics`. Each mail is sent at most once per
order and kind; see `handlers.send_once` for the one window where SMTP is at-least-once.
"""
