"""Poll: fetch feeds with limits, parse them, give items their identity, drop what was seen."""
