"""task: speech-recognition — audio in, text out, trained with CTC (recipe, data, run, service, init)."""
