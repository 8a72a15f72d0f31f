"""The embedded runner: `bazaar up` starts nats-server, an SMTP sink and every service as
its own OS process on one machine, supervises them and stops them cleanly.

    topology.py    the services, their order and kinds: the one table to edit
    platform.py    `Platform`: the whole platform as an object (the CLI and tests use it)
    supervisor.py  processes in their own groups: readiness, restart with backoff, stop
    cli.py         `bazaar up|status|stop|migrate|seed|logs|keys`
    smtp.py        the Maildir SMTP sink (`python -m bazaar.runner.smtp`)
    check.py       `bazaar check`: the checkout's invariants, read from the services' databases
                   (invariants.py the rules, checked_tables.py the tables it reads by name)
    inspect_commands.py  `bazaar check` and `bazaar deadletters [list|replay]`
    deadletters.py the dead-letter stream read and replayed (what `bazaar deadletters` drives)
    demo/          the demo data seeded on the first start
"""
