"""Search: evaluators, constraints, the reward, NSGA-II and FNAS.

The contract every searcher follows is in ``base`` (``SearchProblem``, ``Searcher``,
``SearchResult``, the ``SEARCHERS`` registry); ``results`` writes the files a search leaves.
"""
