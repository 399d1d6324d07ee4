"""Outreach to the county's people: public needs and mediation of disputes (`community`), numbered safety bulletins
drafted from rising tip counts (`bulletins`, `trends`) and delivered through channel adapters (`channels`), and the
public information columns (`columns`) with the traffic-violation lookup (`violations`)."""
