"""HL7 FHIR R4 interface with the ANS PDSm / IHE MHD profiles. One module per interaction."""
