"""Infusion series: the pure schedule search (``search``), proposing and booking a series
(``services``), changing a booked one (``changes``) and what a patient may book (``selectors``).
"""
