"""The book's platform: what every chapter and tool stands on, and nothing of any chapter.

- ``catalogue``: where the book is (repo root, ``_toc.yml``, chapter cards, npm packages);
- ``context``: a chapter's run — profiles, sizes, seeding, device, ``record`` and ``start``;
- ``cache``: the verified, atomically written cache of converted models, data and trained artefacts;
- ``scorecard``: claims joined with recorded metrics;
- ``stats``: small statistics the chapters share.

``core`` imports nothing else of mlbook (a test reads the imports).
"""
