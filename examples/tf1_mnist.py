"""TensorFlow 1 graph code: the Saver is created before Adam's slot variables exist.

Lines marked ``# bug (NNxxx)`` are the problems nnlint reports; see ``nnlint explain NNxxx``.
"""
import tensorflow as tf

x = tf.placeholder(tf.float32, [None, 784])
y = tf.placeholder(tf.int64, [None])

hidden = tf.layers.dense(x, 256, activation=tf.nn.relu)
hidden = tf.nn.dropout(hidden, keep_prob=0.5)  # bug (NN105): dropout also at test time
logits = tf.layers.dense(hidden, 10)
loss = tf.losses.sparse_softmax_cross_entropy(labels=y, logits=logits)

saver = tf.train.Saver()  # bug (NN301): Adam's moment estimates are not saved
train_op = tf.train.AdamOptimizer(1e-3).minimize(loss)
init = tf.global_variables_initializer()


def run(batches, checkpoint: str = "/tmp/model.ckpt") -> None:
    with tf.Session() as session:
        session.run(init)
        for batch_x, batch_y in batches:
            session.run(train_op, feed_dict={x: batch_x, y: batch_y})
        saver.save(session, checkpoint)
