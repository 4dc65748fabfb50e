"""Customers' data requests: access, correction and erasure, each answered with its reasons.

The website inserts rows into shop.data_requests (`table`); `handling.handle_requests` answers the
open ones, each in its own transaction with its row locked, so two overlapping runs never answer
the same request and a request whose handling fails stays open for the next run.

- `payload`: what a request may carry, the reason a bad one is rejected, and what is kept of it;
- `access`: everything held about the customer as one JSON document plus a manifest;
- `correction`: receiving contact and address fields of orders that may still be corrected;
- `erasure`: the purge's own batch statement under the requested-erasure rule, and what waits;
- `finishing`: the nightly pass that clears what erasures were waiting for;
- `exports`: where access exports are written, and deleting them (erasure, expiry);
- `deadlines`: open requests by age against the response deadline;
- `outcome`, `audit`, `failures`: what one answer writes back, its audit rows, a failure's name.

`result` and lifecycle.request_actions hold ids, column names and reason codes, never a value;
once answered, a payload keeps its field names and order ids only.
"""
