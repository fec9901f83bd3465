"""The template store: templates and fragments as the content service publishes them."""
