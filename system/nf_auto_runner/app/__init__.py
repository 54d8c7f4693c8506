"""The FastAPI application and its server entry point."""
