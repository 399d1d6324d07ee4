"""Cases, from the tips that open them to the police's answer. `placement` is the clustering worker: it places
stored tips in cases with the pure `clustering` (and its `lexicon/`) and sets priorities with `triage`; `casework`
is what analysts do with a case — the queue, edit locks, verify / reject / forward / close, merge and split, police
answers — stepped by the pure `workflow`, drafted for the police by the pure `police_summary` and handed to dispatch
by `escalation`; `history` notes each change; `urgent` keeps the on-duty roster and alerts the staff `duty` picks."""
