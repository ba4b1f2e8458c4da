"""Reference code sets shared by the clinical domains (charting, and later prescriptions,
labs and FHIR): ICD-10-CM diagnoses, CVX vaccines, RxNorm ingredients, UCUM units.

Reference data only: no sessions, no audit, no imports of any domain. Each module names the
source of its codes.
"""
