"""Counts PostgreSQL keeps, so `/metrics` reads a few rows where it would count a whole table.

A tally is a name (`memories.live`, `search.pending`, `tasks.<status>`) and one row per server
connection that changed it: statement triggers (migration 0001) add each statement's changes to the
row of the connection making it (`shard` = its backend pid), in that statement's transaction, on every
path that changes rows (services, bulk updates, purges, cascades), so no code can forget one. No two live
connections share a row: a tally costs a write statement one upsert that waits for no other writer
and can add no lock cycle. The sweeper folds the rows of connections that have gone into shard 0 (`tallies_fold`).
TRUNCATE (test flushes) empties the tallies with their tables. SQLite (the embedded default, small
stores) counts instead.
"""
