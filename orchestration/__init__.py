"""Everything that speaks Dagster besides the assets and sensors: resources, the instance and its
run history, run tags, launching jobs, and the `lifecycle` command. lifecycle/ (the domain) never
imports from here."""
