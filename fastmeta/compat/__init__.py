"""Drop-in layers that give users of other meta-learning libraries their familiar API on
fastmeta's engine: ``import fastmeta.compat.learn2learn as l2l``."""
