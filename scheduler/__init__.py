"""Scheduled jobs and the outbox sender: the only code that sends WeChat messages."""
