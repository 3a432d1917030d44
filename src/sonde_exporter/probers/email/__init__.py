"""The email round-trip prober: probe.py runs it, smtp.py sends, poller.py watches the mailbox
over pop3.py or imap.py (which share session.py), headers.py reads what arrived.

Own POP3/IMAP clients: aioimaplib can't time connect/TLS apart or STARTTLS; poplib can't cancel.
This file imports nothing, so importing counters.py does not load the mail stack.
"""
