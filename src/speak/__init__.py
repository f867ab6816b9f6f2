"""SPEAK: spiking neurons as an entropy-aware tokenizer, and the spiking language models around it.

Rooms follow the paper's data flow (a lower room never imports a higher one):
neuron -> text -> tokenizer -> lm -> train -> eval -> experiments / integrations -> cli.
"""

__version__ = "0.1.0"
