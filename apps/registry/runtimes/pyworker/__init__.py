"""The Python model worker: runs inside a model runtime's own interpreter and environment, never in Django.

``main.py`` is the process (protocol loop); ``models.py`` loads artefacts and predicts. Nothing here imports
Django or the platform: the worker is started with the environment's interpreter (``python -I``), which may
hold other library versions than the platform's, and sees only this folder of the repository.
"""
