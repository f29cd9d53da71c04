"""AWS Bedrock's Converse API: SigV4 signing, translation, event-stream decoding, errors."""
