"""Test harness for the black-box tests of legate's data plane.

What it is for: starting the real legate binary on a bootstrap built in Python, the origins and
peers it proxies to (a scriptable HTTP/1.1 origin, nghttpd, grpcio services, Go peers), and raw
HTTP/1.1 and HTTP/2 clients for the cases real clients refuse to send. What it is not for: any
assertion; tests assert, the harness only starts, stops, records and builds.

Every process or thread started here has a bounded stop; every wait has a deadline; every socket is
on 127.0.0.1 or ::1.
"""
