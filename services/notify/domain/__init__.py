"""The notify domain, pure: who receives what, how a message reads, and the two aggregates notify
writes — a notification's delivery and an escalation's acknowledgement watch.  No clock and no I/O:
the time comes in with each command.

Words used here:

* **recipient** — one entry of a community's directory: the property management company (物业),
  the police station's duty line (派出所值班), a street office department (街道业务部室), urban
  management (城管), the 12345 hotline, the community secretary (书记).
* **notification** — one message of one source event (an escalation, an overdue issue, a daily
  digest) to one recipient over one channel.  Its id is derived from (source, recipient, channel),
  so however often the source event is folded, the notification exists once.
* **acknowledgement watch** — for escalations that must be answered (police, street office…): one
  per (source, recipient); acknowledged in time or reported as NotificationUnacknowledged.

Modules: :mod:`.directory` (recipients, channels, quiet hours, the directory's commands and secret
rules), :mod:`.routing` (routing rules as data), :mod:`.templates` (messages in zh and en),
:mod:`.ids` (deterministic ids), :mod:`.delivery` (a notification's steps: decide/evolve, backoff),
:mod:`.acknowledgement` (the watch: decide/evolve), :mod:`.digest` (the secretary's daily digest).
"""
