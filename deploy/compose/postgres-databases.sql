-- One database per service (each owns its data; none reads another's tables). Run once,
-- by the postgres image, when its data volume is empty.
CREATE DATABASE auth;
CREATE DATABASE inventory;
CREATE DATABASE payment;
CREATE DATABASE catalog;
CREATE DATABASE cart;
CREATE DATABASE "order";
CREATE DATABASE notification;
