"""Photos to records to pairs: the data stages."""
