"""Google Gemini's generateContent API: request and response translation, streaming, errors."""
