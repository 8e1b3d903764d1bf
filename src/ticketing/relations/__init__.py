"""Relations between tickets (parent/child, blocks, duplicates, relates to) and merging."""
