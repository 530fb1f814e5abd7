"""The one box convention of semcopy."""

#: (x, y, w, h) in pixels of the image it was measured on (the file as given, unless said otherwise).
Box = tuple[int, int, int, int]
