from .registry import create_model, get_entry, list_models, register_model  # noqa: F401
