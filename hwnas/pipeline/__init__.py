"""The whole job in one call: profile -> train -> search -> export -> verify into one run folder.

``hwnas run`` is a thin call of ``run_pipeline``; ``layout.RunLayout`` names the run folder's files.
"""
