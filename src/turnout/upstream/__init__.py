"""How requests reach provider endpoints over HTTP: the pooled client and its error mapping."""
