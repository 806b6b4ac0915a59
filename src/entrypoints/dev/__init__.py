"""Development tools, apart from production code; they need the ``dev`` extra.

- ``embedded_postgres``: a local PostgreSQL under the data folder when DATABASE_URL is unset;
- ``offline_checkout``: a stand-in for Stripe Checkout (sessions in PostgreSQL, a local page);
- ``sample_data``: the sample practitioners ``booking serve`` and ``booking seed`` add;
- ``local_secrets``: random secrets generated once per data folder (never constants in code);
- ``serve``: ``booking serve``, the development server.

Production (``BOOKING_ENV`` unset or ``production``) never builds any of these.
"""
