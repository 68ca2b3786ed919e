"""Everything that reads the warehouse for a user: queries, the running pipeline's read client, charts."""
