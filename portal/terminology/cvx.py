"""CVX vaccine codes: the vaccines a general practice records most, by code.

Source: the CDC's CVX code set (Vaccines Administered, maintained by the National Center for
Immunization and Respiratory Diseases). ``CVX_VACCINES`` is a short selection of it; each
entry is a code and a short name of our own wording.
"""

from __future__ import annotations

CVX_VACCINES = {
    "03": "MMR (measles, mumps, rubella)",
    "94": "MMRV (measles, mumps, rubella, varicella)",
    "21": "Varicella",
    "20": "DTaP",
    "110": "DTaP, hepatitis B and IPV combined",
    "115": "Tdap",
    "113": "Td, adult, preservative free",
    "10": "IPV (polio, inactivated)",
    "48": "Hib (PRP-T)",
    "08": "Hepatitis B, paediatric or adolescent",
    "43": "Hepatitis B, adult",
    "83": "Hepatitis A, paediatric or adolescent, 2 doses",
    "52": "Hepatitis A, adult",
    "116": "Rotavirus, pentavalent",
    "119": "Rotavirus, monovalent",
    "133": "Pneumococcal conjugate (PCV13)",
    "215": "Pneumococcal conjugate (PCV15)",
    "216": "Pneumococcal conjugate (PCV20)",
    "33": "Pneumococcal polysaccharide (PPSV23)",
    "62": "HPV, quadrivalent",
    "165": "HPV, 9-valent",
    "114": "Meningococcal ACWY (MenACWY-D)",
    "136": "Meningococcal ACWY (MenACWY-CRM)",
    "162": "Meningococcal B, recombinant",
    "141": "Influenza, seasonal, injectable",
    "150": "Influenza, injectable, quadrivalent, preservative free",
    "158": "Influenza, injectable, quadrivalent",
    "88": "Influenza, unspecified formulation",
    "187": "Zoster, recombinant",
    "208": "COVID-19, mRNA (Pfizer-BioNTech, 30 mcg)",
    "207": "COVID-19, mRNA (Moderna, 100 mcg)",
    "213": "COVID-19, unspecified formulation",
    "37": "Yellow fever",
    "101": "Typhoid, ViCPs injectable",
    "18": "Rabies, intramuscular",
}


def vaccine_name(code: str) -> str | None:
    """The short name of the vaccine ``code`` names, or None when it is not in the list."""
    return CVX_VACCINES.get(code)
