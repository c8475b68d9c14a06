"""Demo data: patients with valid (test) INS, professionals, documents carnet generates itself."""
