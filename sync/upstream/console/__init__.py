"""The health authority's console: web pages served by the reference upstream itself (fleet,
venues, traces, CSV, exposure, audit log), with users and sessions in the upstream's database.
See docs/console.md."""
