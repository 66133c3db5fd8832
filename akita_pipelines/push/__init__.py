"""Push beside polling: a webhook receiver that turns providers' signed change notifications
into Integration Objects due at once (``app``: the ASGI app; ``receiver``: its logic;
``signatures``: each provider's scheme; ``notifications``: what each payload says changed)."""
