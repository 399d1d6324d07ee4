"""Tips as they arrive: `intake` stores a tip with its attachments and `TipSubmitted` in one lean transaction and
answers receipts and a volunteer's own tips; `identity` makes the reporter's receipt codes, claim references and
pseudonyms as keyed hashes. The clustering worker (`cases.placement`) places each stored tip in a case."""
