"""The patient's lists: problems (ICD-10-CM), allergies and "no known allergies", medications
(RxNorm), their history of changes, and what a visit does with them (diagnoses addressed,
medication reconciliation)."""
