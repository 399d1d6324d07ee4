"""Recurring service projects (护学 school patrols, 关爱 care, 普法/调解 outreach and mediation, custom): schedules,
generated shifts, sign-ups with a waitlist, and commitments the database keeps from overlapping."""
