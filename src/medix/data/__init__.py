"""Data: samples and loaders, the modality tags, the format prompt and the response parser."""
