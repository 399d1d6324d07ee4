"""The ops console: server-rendered pages for the county's staff, served by the gateway under /console/.

Pages call the services only through the gateway's upstream client, with the signed-in person's own token, so
every page and action passes the same role and org-scope checks as the API (here, then again in the service).
"""
