"""Result messages in the shapes public HL7 and NIST test material show, written for these
tests (facts only: the segments, field positions, identifier and profile conventions; the
patients, numbers and ids are our own).

- ``NIST_STYLE_251``: the NIST ELR 2.5.1 sample test cases' shape: HD components with OIDs in
  MSH-3/4, an SFT segment, MSH-21 profile id, PID-3 with an assigning authority and "MR", a
  SPM segment, OBX-23 performing organisation.
- ``V23``: a 2.3 lab's: the MRN in PID-2 with no identifier type, ORC-2 holding the placer
  number while OBR-2 is empty, ST and NTE lines.
- ``V231``: 2.3.1 with a TX result over several repetitions and an FT with \\.br\\.
- ``V24``: 2.4 with coded (CE) and structured numeric (SN) values, and a Z segment.
"""

NIST_STYLE_251 = (
    "MSH|^~\\&|Lab App^2.16.840.1.113883.3.72.7.1^ISO|Sample Lab^2.16.840.1.113883.3.72.7.2^ISO"
    "|PORTAL|CLINIC|20100929110702-0500||ORU^R01^ORU_R01|NIST-TEST-0001|P|2.5.1|||NE|NE|||||"
    "LRI_Common_Component^^2.16.840.1.113883.9.16^ISO\r"
    "SFT|Sample Lab, Inc.|3.6.23|A-1 Lab System|6742873-12||20080303\r"
    "PID|1||{mrn}^^^CLINIC&2.16.840.1.113883.19.3.2.1&ISO^MR||Johnson^Philip^^^^^L||{dob}|M\r"
    "ORC|RE|{placer}^PORTAL|LAB-7781^Sample Lab\r"
    "OBR|1|{placer}^PORTAL|LAB-7781^Sample Lab|4548-4^Hemoglobin A1c^LN|||20100929093000-0500"
    "|||||||||||||||20100929110000-0500|||F\r"
    "OBX|1|NM|4548-4^Hemoglobin A1c/Hemoglobin.total in Blood^LN||7.9|%^percent^UCUM|4.0-5.6"
    "|H|||F|||20100929093000-0500|||||20100929110000-0500||||"
    "Sample Lab^L^^^^CLIA&2.16.840.1.113883.19.4.6&ISO^XX^^^01D1234567\r"
    "SPM|1|||119297000^Blood specimen^SCT\r"
)

V23 = (
    "MSH|^~\\&|LABSYS|CITYLAB|PORTAL|CLINIC|199912271408||ORU^R01|CDB22222|P|2.3\r"
    "PID|1|{mrn}|||Evans^Carl^J||{dob}|M\r"
    "ORC|RE|{placer}|CL-55\r"
    "OBR|1||CL-55|3016-3^TSH^LN|||199912271200\r"
    "OBX|1|NM|3016-3^TSH^LN||0.21|mIU/L|0.4-4.0|L|||F\r"
    "NTE|1|L|Repeat in 6 weeks suggested.\r"
    "OBX|2|ST|3024-7^Free T4^LN||pending review|||||P\r"
)

V231 = (
    "MSH|^~\\&|LABSYS|CITYLAB|PORTAL|CLINIC|200301151030||ORU^R01|CDB33333|P|2.3.1\r"
    "PID|1||{mrn}^^^CLINIC^MR||Evans^Carl||{dob}|M\r"
    "OBR|1|{placer}|CL-66|24356-8^Urinalysis complete^LN|||200301150900\r"
    "OBX|1|TX|24356-8^Urinalysis comment^LN||Specimen slightly turbid.~No casts seen.||||||F\r"
    "OBX|2|FT|24356-8^Urinalysis report^LN|2|Line one\\.br\\Line two||||||F\r"
    "OBX|3|NM|5811-5^Specific gravity^LN||1.020||1.005-1.030|N|||F\r"
)

V24 = (
    "MSH|^~\\&|LABSYS|CITYLAB|PORTAL|CLINIC|200604051030||ORU^R01|CDB44444|P|2.4\r"
    "PID|1||{mrn}^^^CLINIC^MR||Evans^Carl||{dob}|M\r"
    "OBR|1|{placer}|CL-77|1988-5^CRP^LN|||200604050900\r"
    "OBX|1|SN|1988-5^C reactive protein^LN||<^0.3|mg/L|0.0-0.9||||F\r"
    "OBX|2|CE|22322-2^Hepatitis B surface Ab^LN||260385009^Negative^SCT||||||F\r"
    "ZLB|1|internal routing note\r"
)
