"""CDA R2 documents: reading the header's XDS metadata, building level 1 (PDF) and level 3
(structured) documents, and a small PDF writer for demo content. See README.md in this package
for the specification choices."""
