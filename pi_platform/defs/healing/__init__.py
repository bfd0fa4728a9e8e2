"""Late edits heal: a sensor follows PI's Stream Updates and re-reads exactly the tag-days operators edited."""
