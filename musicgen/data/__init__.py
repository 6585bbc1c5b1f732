"""Reading MIDI folders into token streams and cutting them into training windows."""
