"""Alerts: rules kept in the console's database, evaluated by one live worker at a time,
notifications sent as durable Waymark workflows.

models.py     rules, their state, history (also the outbox of notifications), the lease
rules.py      what each kind of rule reads and when it fires
lease.py      exactly one evaluator: a lease row taken with a conditional UPDATE
evaluator.py  one pass: evaluate, record state changes and reminders, dispatch notifications
notify.py     the notification workflow (webhook or e-mail), registered on every worker
forms.py      views.py   the /alerts/ pages (admins edit, everyone signed in reads)
"""
