"""Everything that keeps secrets in the process, in one place to review: whatever spyglass
sends that could carry one passes through here first.

- ``scrub``: the ``Scrubber`` -- headers (auth, cookies, API keys), query strings, URLs
  (credentials, secret parameters), keys of mappings (form and JSON bodies, locals, user
  fields, tags) judged by name, and free text (exception messages, reprs, log messages)
  judged by the redaction patterns: e-mail addresses, card numbers, Bearer/Basic
  credentials, JWTs, URL credentials, ``secret=value`` pairs;
- ``sql``: SQL obfuscation (every literal a ``?``; a statement that cannot be read with
  certainty becomes ``?`` whole), signatures and grouping hashes;
- ``solr``: Solr query obfuscation (every term a ``?``);
- ``stacktrace``: a traceback as text (spans' exception events, error events), scrubbed
  and capped;
- ``argv``: the command line, values of secret-looking options masked.

Importing this package imports none of them: each is loaded where it is first needed.
"""
