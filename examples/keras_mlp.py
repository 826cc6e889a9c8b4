"""A Keras MLP whose output activation fights its loss, trained with BatchNorm one sample at a time.

Lines marked ``# bug (NNxxx)`` are the problems nnlint reports; see ``nnlint explain NNxxx``.
"""
from tensorflow import keras
from tensorflow.keras import layers


def build_model() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(784,)),
            layers.Dense(256, activation="sigmoid"),
            layers.Dense(256, activation="sigmoid"),
            layers.Dense(256, activation="sigmoid"),
            layers.Dense(128, activation="sigmoid"),
            layers.Dense(128, activation="sigmoid"),  # bug (NN102): five saturating layers in a row
            layers.BatchNormalization(),
            layers.Dense(10, activation="softmax"),  # bug (NN201): the loss below expects logits
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train(x_train, y_train) -> keras.Model:
    model = build_model()
    model.fit(x_train, y_train, epochs=5, batch_size=1)  # bug (NN501): BatchNorm on one example
    return model
